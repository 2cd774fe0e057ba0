from cyberpact.cli import main

main()
