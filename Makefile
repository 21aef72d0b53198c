.PHONY: run test test-sqlite demo lint bench

run:            ## set up and run the app (web + workers, SQLite and a local Redis)
	scripts/run.sh

test:           ## set up and run every test
	scripts/test.sh

test-sqlite:    ## the non-browser tests again on SQLite
	DATABASE_URL= scripts/test.sh -m "not browser" -q

demo:           ## the pipeline offline, against loopback fakes, then the app
	scripts/demo.sh

lint:
	.venv/bin/ruff check .
