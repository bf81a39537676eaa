"""Solve one pruning block on a D-Wave QPU: a mock of an Advantage (Pegasus P16) or Advantage2
(Zephyr) QPU by default, Leap with --hardware.

    python examples/dwave_qpu.py
    python examples/dwave_qpu.py --topology advantage2 --n 16
    DWAVE_API_TOKEN=... python examples/dwave_qpu.py --hardware --max-cost 1

The mock has the QPU generation's full graph, so embedding, chains and unembedding run as on the
QPU; its answers come from a classical sampler (steepest descent), so it shows what embedding
costs (chain lengths, chain breaks), not what the QPU would answer.
"""

from _common import gram_block, guard, parser, solve_and_report

from qubo_prune.backends.registry import get_backend

cli = parser("D-Wave QPU with a clique embedding on one block")
cli.add_argument("--topology", choices=["advantage", "advantage2"], default="advantage")
args = cli.parse_args()

options = {"num_reads": 1000}
if args.hardware:
    guard("dwave", options, args.max_cost)
    backend = get_backend("dwave", **options)
else:
    from qubo_prune.backends.dwave import mock_qpu

    # The mock stands in for the QPU: no token is needed, nothing leaves the machine.
    backend = get_backend("dwave", qpu_sampler=mock_qpu(args.topology), **options)
solve_and_report(backend, gram_block(args.n, args.seed))
