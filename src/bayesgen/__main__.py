from bayesgen.cli import run

run()
