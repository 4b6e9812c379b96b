"""``python -m gan_lab.eval``: the documented name of :mod:`gan_lab.commands.eval`."""

from gan_lab.commands.eval import main

if __name__ == "__main__":
    main()
