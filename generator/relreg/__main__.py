from relreg.cli.main import main

main()
