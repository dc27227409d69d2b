from ordercast.cli import main

raise SystemExit(main())
