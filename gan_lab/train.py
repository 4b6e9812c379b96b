"""``python -m gan_lab.train``: the documented name of :mod:`gan_lab.commands.train`."""

from gan_lab.commands.train import main

if __name__ == "__main__":
    main()
