from shadowlab.cli import main

main()
