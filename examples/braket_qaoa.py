"""Solve one pruning block with QAOA on Amazon Braket: LocalSimulator, or a QPU with --hardware.

    python examples/braket_qaoa.py
    AWS_PROFILE=... python examples/braket_qaoa.py --hardware --max-cost 5

On hardware the angles are trained on the local simulator and one task of 200 shots goes to
the device (``optimize_on="local"``), which keeps the bill to one task fee plus the shots.
"""

from _common import gram_block, guard, parser, solve_and_report

from qubo_prune.backends.registry import get_backend

cli = parser("QAOA with braket.circuits on one block")
cli.add_argument(
    "--device",
    default="arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet",
    help="gate-model device ARN used with --hardware",
)
args = cli.parse_args()

options = {"reps": 1, "shots": 512, "seed": args.seed}
if args.hardware:
    options |= {"device_arn": args.device, "optimize_on": "local", "shots": 200}
guard("braket", options, args.max_cost)
solve_and_report(get_backend("braket", **options), gram_block(args.n, args.seed))
