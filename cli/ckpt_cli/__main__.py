from ckpt_cli import main

main()
