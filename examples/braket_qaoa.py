"""Solve one pruning block with XY-mixer QAOA on Amazon Braket: the local simulator, a published
device's noise with --noise, or a QPU with --hardware.

    python examples/braket_qaoa.py
    python examples/braket_qaoa.py --noise ionq-forte           # IonQ Forte's gate errors, local
    AWS_PROFILE=... python examples/braket_qaoa.py --hardware --max-cost 5

With noise or on hardware the angles are trained on the noiseless local simulator and one task
samples the device (``optimize_on="local"``): on a QPU that keeps the bill to one task fee plus
the shots.
"""

from _common import gram_block, guard, parser, solve_and_report

from qubo_prune.backends.registry import get_backend

cli = parser("XY-mixer QAOA with braket.circuits on one block")
cli.add_argument(
    "--device",
    default="arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet",
    help="gate-model device ARN used with --hardware",
)
cli.add_argument("--noise", default=None, help="published device noise, e.g. ionq-forte")
cli.add_argument("--mixer", choices=["xy", "x"], default="xy")
args = cli.parse_args()

options = {"reps": 2, "maxiter": 40, "shots": 512, "seed": args.seed, "mixer": args.mixer}
if args.noise:
    options |= {"noise_model": args.noise, "optimize_on": "local"}
if args.hardware:
    options |= {"device_arn": args.device, "optimize_on": "local", "shots": 200}
guard("braket", options, args.max_cost)
solve_and_report(get_backend("braket", **options), gram_block(args.n, args.seed))
