"""Solve one pruning block with XY-mixer QAOA in qiskit: Aer by default, a noisy fake IBM device
with --fake, IBM hardware (one Runtime session for the whole block) with --hardware.

    python examples/qaoa_qiskit.py
    python examples/qaoa_qiskit.py --fake fake_kingston        # Heron r2 noise model, local
    python examples/qaoa_qiskit.py --mixer x                   # standard QAOA, penalised BQM
    QISKIT_IBM_TOKEN=... python examples/qaoa_qiskit.py --hardware --device ibm_kingston \\
        --max-cost 60

Every noiseless shot of the XY ansatz is feasible (Dicke states, Hamming-weight preserving
mixer); on a noisy device some are not, and the decoder repairs them. On a fake device or on
hardware the angles are trained on Aer (``optimize_on="local"``) and one job samples the device.
"""

from _common import gram_block, guard, parser, solve_and_report

from qubo_prune.backends.registry import get_backend

cli = parser("XY-mixer QAOA (qiskit) on one block")
cli.add_argument("--device", default="ibm_kingston", help="IBM backend used with --hardware")
cli.add_argument("--fake", default=None, help="fake IBM device, e.g. fake_kingston, fake_brisbane")
cli.add_argument("--mixer", choices=["xy", "x"], default="xy")
args = cli.parse_args()

options = {"reps": 2, "maxiter": 60, "shots": 1024, "seed": args.seed, "mixer": args.mixer}
if args.fake:
    options |= {"fake_backend": args.fake, "optimize_on": "local"}
if args.hardware:
    options |= {"ibm_backend": args.device, "optimize_on": "local"}
guard("qaoa-qiskit", options, args.max_cost)
solve_and_report(get_backend("qaoa-qiskit", **options), gram_block(args.n, args.seed))
