"""Solve one pruning block with QAOA in qiskit: Aer by default, IBM hardware with --hardware.

python examples/qaoa_qiskit.py
QISKIT_IBM_TOKEN=... python examples/qaoa_qiskit.py --hardware --device ibm_torino --max-cost 60
"""

from _common import gram_block, guard, parser, solve_and_report

from qubo_prune.backends.registry import get_backend

cli = parser("QAOA (qiskit-optimization) on one block")
cli.add_argument("--device", default="ibm_torino", help="IBM backend used with --hardware")
args = cli.parse_args()

options = {"reps": 2, "maxiter": 60, "shots": 1024, "seed": args.seed}
if args.hardware:
    options |= {"ibm_backend": args.device, "maxiter": 30}
guard("qaoa-qiskit", options, args.max_cost)
solve_and_report(get_backend("qaoa-qiskit", **options), gram_block(args.n, args.seed))
