.PHONY: run test test-sqlite demo lint bench

run:            ## set up and run the app (web + workers, SQLite and a local Redis)
	scripts/run.sh

test:           ## set up and run every test
	scripts/test.sh

test-sqlite:    ## the tests again on SQLite, but the browser tests and those that start workers
	DATABASE_URL= scripts/test.sh -m "not browser and not slow" -q

demo:           ## the pipeline offline, against loopback fakes, then the app
	scripts/demo.sh

lint:
	.venv/bin/ruff check .
