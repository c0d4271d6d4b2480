from genesys_sentiment_exporter.cli import main

raise SystemExit(main())
