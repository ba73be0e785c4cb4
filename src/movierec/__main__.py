"""``python -m movierec``: the command line (also what DDP ranks re-run, see ``movierec.train``)."""

from movierec.cli import app

if __name__ == "__main__":
    app(prog_name="movierec")
