"""``python -m gan_lab.fid``: the documented name of :mod:`gan_lab.commands.fid`."""

from gan_lab.commands.fid import main

if __name__ == "__main__":
    main()
