from continuum_events.cli import main

main()
