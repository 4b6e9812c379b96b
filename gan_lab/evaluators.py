"""``python -m gan_lab.evaluators``: the documented name of :mod:`gan_lab.commands.evaluators`."""

from gan_lab.commands.evaluators import main

if __name__ == "__main__":
    main()
