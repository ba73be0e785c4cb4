// movierec web page: plain DOM, no framework, no external resources.
// Every value from the API is inserted with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const liked = new Map(); // movie_id -> movie, in the order they were picked

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = new Error(describeError(response.status, body));
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

function describeError(status, body) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail) && body.detail.length && body.detail[0].msg) {
    return String(body.detail[0].msg);
  }
  if (status === 404) return "Not found.";
  if (status === 422) return "That request was not valid.";
  return `The server answered ${status}.`;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function show(node, visible) {
  node.hidden = !visible;
}

function setError(node, message) {
  node.textContent = message || "";
  show(node, Boolean(message));
}

// ----------------------------------------------------------------- movie cards

// Only https links to these two sites are ever put in an href.
const EXTERNAL = [
  ["imdb_url", "IMDb", "https://www.imdb.com/"],
  ["tmdb_url", "TMDB", "https://www.themoviedb.org/"],
];

function externalLinks(movie) {
  const links = el("span", "links");
  for (const [field, name, prefix] of EXTERNAL) {
    const url = movie[field];
    if (typeof url !== "string" || !url.startsWith(prefix)) continue;
    const a = el("a", `ext ${name.toLowerCase()}`, name);
    a.href = url;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.setAttribute("aria-label", `${movie.title} on ${name}`);
    links.append(a);
  }
  return links;
}

function becauseLine(movie, verb) {
  const names = (movie.because || []).map((m) => m.title);
  if (!names.length) return null;
  const line = el("p", "because", `because you ${verb} `);
  names.forEach((name, i) => {
    if (i) line.append(i === names.length - 1 ? " and " : ", ");
    line.append(el("span", "because-title", name));
  });
  return line;
}

function movieCard(movie, { onLike, extra, because } = {}) {
  const li = el("li", "movie");
  li.dataset.movieId = movie.movie_id;
  const head = el("div", "movie-head");
  const title = el("button", "title-link", movie.title);
  title.type = "button";
  title.title = `Movies like ${movie.title}`;
  title.addEventListener("click", () => showSimilar(movie));
  head.append(title);
  if (movie.year) head.append(el("span", "year", movie.year));
  li.append(head);

  const meta = el("div", "movie-meta");
  for (const genre of movie.genres || []) meta.append(el("span", "genre", genre));
  if (extra) meta.append(el("span", "muted", extra));
  meta.append(externalLinks(movie));
  li.append(meta);
  const reason = because ? becauseLine(movie, because) : null;
  if (reason) li.append(reason);

  if (typeof movie.score === "number") {
    const bar = el("span", "score");
    bar.title = `score ${movie.score.toFixed(3)}`;
    bar.style.setProperty("--w", `${Math.round((movie._bar ?? 1) * 100)}%`);
    li.append(bar);
  }
  if (onLike && !liked.has(movie.movie_id)) {
    const add = el("button", "like", "+ Like");
    add.type = "button";
    add.setAttribute("aria-label", `Add ${movie.title} to the movies you like`);
    add.addEventListener("click", () => onLike(movie));
    li.append(add);
  }
  return li;
}

function fillList(list, movies, options = {}) {
  scaleScores(movies);
  list.replaceChildren(...movies.map((m) => movieCard(m, options)));
}

const hasScore = (m) => typeof m.score === "number";

function scaleScores(movies) {
  // Bars show each score relative to the best in the list (scores have no fixed scale).
  const scores = movies.filter(hasScore).map((m) => m.score);
  if (!scores.length) return;
  const hi = Math.max(...scores);
  const lo = Math.min(...scores, 0);
  for (const m of movies.filter(hasScore)) m._bar = hi > lo ? (m.score - lo) / (hi - lo) : 1;
}

// ----------------------------------------------------------------- type-ahead

const search = $("search");
const suggestions = $("suggestions");
let searchSeq = 0;
let searchTimer = 0;
let active = -1;

search.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(runSearch, 120);
});

async function runSearch() {
  const q = search.value.trim();
  const seq = ++searchSeq;
  if (!q) return closeSuggestions();
  try {
    const found = await api(`/v1/movies?q=${encodeURIComponent(q)}&limit=8`);
    if (seq !== searchSeq) return; // a newer keystroke won
    renderSuggestions(found.items);
  } catch {
    if (seq === searchSeq) closeSuggestions();
  }
}

function renderSuggestions(movies) {
  active = -1;
  if (!movies.length) {
    suggestions.replaceChildren(el("li", "empty", "No movie matches"));
  } else {
    suggestions.replaceChildren(
      ...movies.map((movie, i) => {
        const li = el("li", "suggestion");
        li.id = `suggestion-${i}`;
        li.setAttribute("role", "option");
        li.dataset.movieId = movie.movie_id;
        li.append(el("span", "title", movie.title));
        if (movie.year) li.append(el("span", "year", movie.year));
        li.append(el("span", "genres muted", (movie.genres || []).join(", ")));
        li.addEventListener("mousedown", (event) => {
          event.preventDefault(); // keep focus in the input
          pick(movie);
        });
        li._movie = movie;
        return li;
      }),
    );
  }
  show(suggestions, true);
  search.setAttribute("aria-expanded", "true");
}

function closeSuggestions() {
  show(suggestions, false);
  suggestions.replaceChildren();
  search.setAttribute("aria-expanded", "false");
  search.removeAttribute("aria-activedescendant");
  active = -1;
}

search.addEventListener("keydown", (event) => {
  const options = [...suggestions.querySelectorAll(".suggestion")];
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    if (!options.length) return;
    event.preventDefault();
    const step = event.key === "ArrowDown" ? 1 : -1;
    active = (active + step + options.length) % options.length;
    options.forEach((o, i) => o.setAttribute("aria-selected", String(i === active)));
    search.setAttribute("aria-activedescendant", options[active].id);
  } else if (event.key === "Enter") {
    event.preventDefault();
    const choice = options[active >= 0 ? active : 0];
    if (choice) pick(choice._movie);
  } else if (event.key === "Escape") {
    closeSuggestions();
  }
});

search.addEventListener("blur", () => setTimeout(closeSuggestions, 100));

function pick(movie) {
  search.value = "";
  closeSuggestions();
  addLiked(movie);
}

// ----------------------------------------------------------------- liked movies

function addLiked(movie) {
  if (liked.has(movie.movie_id) || liked.size >= 100) return;
  liked.set(movie.movie_id, movie);
  renderChips();
  refreshLikedRecs();
}

function removeLiked(movieId) {
  liked.delete(movieId);
  renderChips();
  refreshLikedRecs();
}

function renderChips() {
  $("chips").replaceChildren(
    ...[...liked.values()].map((movie) => {
      const chip = el("li", "chip");
      chip.append(el("span", "", movie.year ? `${movie.title} (${movie.year})` : movie.title));
      const remove = el("button", "chip-remove", "×");
      remove.type = "button";
      remove.setAttribute("aria-label", `Remove ${movie.title}`);
      remove.addEventListener("click", () => removeLiked(movie.movie_id));
      chip.append(remove);
      return chip;
    }),
  );
}

let likedSeq = 0;

async function refreshLikedRecs() {
  const seq = ++likedSeq;
  const list = $("liked-recs");
  setError($("liked-error"), "");
  show($("liked-hint"), liked.size === 0);
  show($("liked-recs-heading"), liked.size > 0);
  if (!liked.size) return list.replaceChildren();
  list.setAttribute("aria-busy", "true");
  try {
    const body = JSON.stringify({ liked: [...liked.keys()], k: 12, ...filterValues() });
    const recs = await api("/v1/recommendations", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    if (seq !== likedSeq) return;
    fillList(list, recs.items, { onLike: addLiked, because: "like" });
    showEmpty(list, recs.items);
  } catch (error) {
    if (seq !== likedSeq) return;
    list.replaceChildren();
    setError($("liked-error"), error.message);
  } finally {
    if (seq === likedSeq) list.removeAttribute("aria-busy");
  }
}

// ----------------------------------------------------------------- existing user

let currentUser = null;
let userSeq = 0;

$("user-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const id = $("user-id").value.trim();
  setError($("user-error"), "");
  if (!/^\d{1,10}$/.test(id)) {
    setError($("user-error"), "A user id is a whole number.");
    return;
  }
  show($("user-result"), false);
  currentUser = null;
  const seq = ++userSeq;
  try {
    const [recs, history] = await Promise.all([
      api(`/v1/users/${id}/recommendations?${filterQuery({ k: 10 })}`),
      api(`/v1/users/${id}/history?limit=50`),
    ]);
    if (seq !== userSeq) return;
    currentUser = id;
    showUserRecs(recs);
    $("user-total").textContent = `(${history.total} rated)`;
    const watched = history.items.map((m) => ({ ...m, _when: formatDate(m.timestamp) }));
    $("user-history").replaceChildren(...watched.map((m) => movieCard(m, { extra: m._when })));
    show($("user-result"), true);
  } catch (error) {
    if (seq !== userSeq) return;
    setError($("user-error"), error.status === 404 ? `No user ${id}.` : error.message);
  }
});

const FALLBACK = {
  depth: "more than the store holds",
  filter: "the precomputed list ran short after filtering",
  missing: "no precomputed list for this user",
};

function showUserRecs(recs) {
  const badge = $("user-source");
  badge.textContent = recs.source === "store" ? "precomputed" : "live";
  badge.title = recs.fallback ? `computed now: ${FALLBACK[recs.fallback] || recs.fallback}` : "";
  fillList($("user-recs"), recs.items, { because: "watched" });
  showEmpty($("user-recs"), recs.items);
}

async function refreshUserRecs() {
  if (currentUser === null) return;
  const id = currentUser;
  const seq = ++userSeq;
  setError($("user-error"), "");
  try {
    const recs = await api(`/v1/users/${id}/recommendations?${filterQuery({ k: 10 })}`);
    if (seq === userSeq) showUserRecs(recs);
  } catch (error) {
    if (seq === userSeq) setError($("user-error"), error.message);
  }
}

function formatDate(seconds) {
  const d = new Date(seconds * 1000);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString().slice(0, 10);
}

// ----------------------------------------------------------------- similar movies

let similarSeq = 0;
let similarTo = null;

async function showSimilar(movie, { scroll = true } = {}) {
  const seq = ++similarSeq;
  similarTo = movie;
  const panel = $("similar");
  $("similar-heading").textContent = `More like ${movie.title}`;
  setError($("similar-error"), "");
  $("similar-list").replaceChildren();
  show(panel, true);
  try {
    const found = await api(`/v1/movies/${movie.movie_id}/similar?${filterQuery({ k: 10 })}`);
    if (seq !== similarSeq) return;
    fillList($("similar-list"), found.items, { onLike: addLiked });
    showEmpty($("similar-list"), found.items);
  } catch (error) {
    if (seq === similarSeq) setError($("similar-error"), error.message);
  }
  if (scroll) panel.scrollIntoView({ behavior: "smooth", block: "nearest" });
}

$("similar-close").addEventListener("click", () => {
  similarTo = null;
  show($("similar"), false);
});

function showEmpty(list, items) {
  if (!items.length) list.replaceChildren(el("li", "empty muted", "No movie passes the filters."));
}

// ----------------------------------------------------------------- filters

const genreState = new Map(); // genre -> "only" | "out" (absent: any)
const NEXT_STATE = { any: "only", only: "out", out: "any" };
const STATE_TEXT = { any: "any", only: "only these", out: "left out" };

function filterValues() {
  const values = {
    genre: [...genreState].filter(([, s]) => s === "only").map(([g]) => g),
    exclude_genre: [...genreState].filter(([, s]) => s === "out").map(([g]) => g),
  };
  const [from, to] = yearBounds();
  if (from || to) values.years = `${from}-${to}`;
  return values;
}

function yearBounds() {
  // A bound counts once it is a whole year (four digits): "19" while typing is ignored.
  return ["year-from", "year-to"].map((id) => {
    const text = $(id).value.trim();
    return /^\d{4}$/.test(text) ? text : "";
  });
}

function filterQuery(extra) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries({ ...extra, ...filterValues() })) {
    for (const v of Array.isArray(value) ? value : [value]) query.append(key, String(v));
  }
  return query.toString();
}

function renderGenres(genres) {
  $("genre-chips").replaceChildren(
    ...genres.map(({ name, movies }) => {
      const chip = el("button", "genre-chip", name);
      chip.type = "button";
      chip.dataset.genre = name;
      chip.title = `${movies.toLocaleString()} movies`;
      paintGenre(chip);
      chip.addEventListener("click", () => {
        const next = NEXT_STATE[genreState.get(name) || "any"];
        if (next === "any") genreState.delete(name);
        else genreState.set(name, next);
        paintGenre(chip);
        filtersChanged();
      });
      return chip;
    }),
  );
}

function paintGenre(chip) {
  const state = genreState.get(chip.dataset.genre) || "any";
  chip.dataset.state = state;
  chip.setAttribute("aria-label", `${chip.dataset.genre}: ${STATE_TEXT[state]}`);
}

let filtersTimer = 0;

function filtersChanged() {
  const values = filterValues();
  const active = values.genre.length || values.exclude_genre.length || values.years;
  show($("filters-clear"), Boolean(active));
  clearTimeout(filtersTimer);
  const [from, to] = yearBounds();
  if (from && to && Number(from) > Number(to)) {
    setError($("filters-error"), "The first year is after the last.");
    return;
  }
  setError($("filters-error"), "");
  filtersTimer = setTimeout(() => {
    if (liked.size) refreshLikedRecs();
    refreshUserRecs();
    if (similarTo) showSimilar(similarTo, { scroll: false });
  }, 150);
}

for (const id of ["year-from", "year-to"]) $(id).addEventListener("input", filtersChanged);

$("filters-clear").addEventListener("click", () => {
  genreState.clear();
  $("year-from").value = "";
  $("year-to").value = "";
  for (const chip of $("genre-chips").children) paintGenre(chip);
  filtersChanged();
});

(async () => {
  try {
    renderGenres((await api("/v1/genres")).genres);
  } catch (error) {
    setError($("filters-error"), `Genres unavailable: ${error.message}`);
  }
})();

// ----------------------------------------------------------------- model line

(async () => {
  try {
    const info = await api("/v1/model");
    const parts = [info.model || "model"];
    if (info.trained_at) parts.push(`trained ${String(info.trained_at).slice(0, 10)}`);
    parts.push(`${info.movies.toLocaleString()} movies`);
    if (info.store && info.store.created_at) {
      parts.push(`precomputed ${String(info.store.created_at).slice(0, 10)}`);
    }
    $("model-info").textContent = parts.join(" · ");
    show($("report-link"), Boolean(info.report));
  } catch {
    $("model-info").textContent = "model information unavailable";
  }
})();
