from neurolink.cli import main

raise SystemExit(main())
