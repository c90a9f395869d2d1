"""Engine settings every test appliance shares (the main suite's and the installer guests')."""

# The large tier, where it has an engine of its own (the shipped one shares small's), without
# torch.compile: inductor's build of it is about 2.5 minutes of an
# appliance's start on 2 cores and changes no behaviour the tests check. `make run` and
# perf/ keep the compiled default (perf/compile_suite.py measures both).
EAGER_LARGE_TIER = "[tiers.large.engine_args]\nenforce_eager = true\n"
