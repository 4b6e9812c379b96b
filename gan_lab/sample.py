"""``python -m gan_lab.sample``: the documented name of :mod:`gan_lab.commands.sample`."""

from gan_lab.commands.sample import main

if __name__ == "__main__":
    main()
