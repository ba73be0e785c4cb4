"""A run's report: one self-contained HTML file a person would rather look at than read.

``movierec report RUN`` (and ``movierec run``, once its leaderboard is done) writes
``RUN/report.html``: training curves (loss and validation HR@10 / NDCG@10 per epoch, the
epoch kept marked), the leaderboard as a chart (error bars over seeds when there are
several; read from ``RUN/leaderboard.json``, which the main job writes), popularity bias
(how popular the top-10 movies are against the catalogue and what users watched, and the
catalogue coverage of the lists), a 2-D map of the model's item vectors coloured by genre,
and the data set's shape (interactions per user, per movie, per year). Plots are PNGs
inside the page; no script, nothing fetched. The same run gives the same file.

Modules, in the order they depend on each other:

- ``board``: ``leaderboard.json``, written by the main job, read back as ``compare.Row``;
- ``stats``: the pure arithmetic (percentiles, concentration, projection, bins);
- ``gather``: a run (through ``Recommender``) -> one dataclass of arrays per section;
- ``figures``: a section's data -> matplotlib figure -> PNG bytes (no ``pyplot``);
- ``page``: HTML assembly and escaping;
- ``build``: sections from the data, the document, the atomic write.

Only this package imports matplotlib and scikit-learn: ``import movierec`` and the service
do not load them.
"""

from __future__ import annotations

from movierec.report.board import LEADERBOARD, read_board, write_board
from movierec.report.build import ReportFile, build_report, write_report

__all__ = ["LEADERBOARD", "ReportFile", "build_report", "read_board", "write_board", "write_report"]
