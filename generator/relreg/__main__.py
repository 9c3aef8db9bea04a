from relreg.launch import main

main()
