from mongooseim_agent.cli import main

raise SystemExit(main())
