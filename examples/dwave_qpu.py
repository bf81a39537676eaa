"""Solve one pruning block on a D-Wave QPU: MockDWaveSampler by default, Leap with --hardware.

    python examples/dwave_qpu.py
    DWAVE_API_TOKEN=... python examples/dwave_qpu.py --hardware --max-cost 1

The mock has a real (small Chimera) graph, so embedding, chains and unembedding run as on the QPU.
"""

from _common import gram_block, guard, parser, solve_and_report

from qubo_prune.backends.registry import get_backend

args = parser("D-Wave QPU with a clique embedding on one block").parse_args()

options = {"num_reads": 1000}
if args.hardware:
    guard("dwave", options, args.max_cost)
    backend = get_backend("dwave", **options)
else:
    from dwave.system.testing import MockDWaveSampler

    # The mock stands in for the QPU: no token is needed, nothing leaves the machine.
    backend = get_backend("dwave", qpu_sampler=MockDWaveSampler(), **options)
solve_and_report(backend, gram_block(args.n, args.seed))
