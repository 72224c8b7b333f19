"""`python -m elvmass` runs the same command as `elvmass`."""

from elvmass.cli import main

if __name__ == "__main__":
    main()
