"""``python -m movierec``: the command line (what DDP ranks re-run: ``movierec.training.fit``)."""

from movierec.cli import app

if __name__ == "__main__":
    app(prog_name="movierec")
