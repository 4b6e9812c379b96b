"""``python -m gan_lab.report``: the documented name of :mod:`gan_lab.commands.report`."""

from gan_lab.commands.report import main

if __name__ == "__main__":
    main()
