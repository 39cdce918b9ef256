"""``python -m spikerl ...``: the same as the ``spikerl`` command."""
from .cli import main

if __name__ == "__main__":
    main()
