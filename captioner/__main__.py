"""``python -m captioner`` / ``accelerate launch -m captioner``: see :mod:`captioner.job`."""
from captioner.job import run

if __name__ == "__main__":
    run()
