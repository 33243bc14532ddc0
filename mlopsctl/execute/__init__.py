"""Plan -> runs: the apply loop, the executors and the one unit of work they all call."""
