from relreg.cli import main

main()
