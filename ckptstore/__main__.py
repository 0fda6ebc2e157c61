"""``python -m ckptstore``: run the ``ckpt`` command.

This is an entry point, not part of the library: the library never imports the CLI,
and this module only hands over to it.
"""

from ckpt_cli import main

main()
