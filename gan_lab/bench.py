"""``python -m gan_lab.bench``: the documented name of :mod:`gan_lab.commands.bench`."""

from gan_lab.commands.bench import main

if __name__ == "__main__":
    main()
