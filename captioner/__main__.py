"""``python -m captioner`` / ``accelerate launch -m captioner``: see :mod:`captioner.job`."""
from captioner.job import run


def _close_process_group() -> None:
    """Tear down torch.distributed before the interpreter does: a gloo group left to interpreter
    shutdown can abort a rank at exit ("terminate called without an active exception", seen once
    in a clean-clone run of tests/captioner/test_job.py) after all its work is done."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    try:
        run()
    finally:
        _close_process_group()
