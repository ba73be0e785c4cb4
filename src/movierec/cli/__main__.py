"""``python -m movierec.cli``: the command line."""

from movierec.cli import app

if __name__ == "__main__":
    app(prog_name="movierec")
