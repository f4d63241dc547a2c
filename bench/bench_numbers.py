"""What normalising costs per number, against what a check costs (issue 17: "well under 1%").

No emulator, no warehouse: ``PhoneNumberNormalizer`` alone over ``--numbers`` inputs of each kind a table
holds (``+`` numbers of every country, national numbers with ``default_region``, integers, Russian trunk 8,
junk), built from phonenumbers' example numbers so that every calling code is represented. The figure is
CPU time per call (``time.process_time``), the best of ``--repeat`` passes; the reference is the CPU the
provider spends per checked number in the overhead case (``--check-cpu-us``, docs/benchmarks.md).

    .venv/bin/python bench/bench_numbers.py                 # 100,000 inputs per kind
    .venv/bin/python bench/bench_numbers.py --numbers 20000 --json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Sequence

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from airflow_provider_greenapi.numbers import PhoneNumberNormalizer

CHECK_CPU_US = 640.0  # the overhead case's CPU per checked number: 639 to 688 us in recent make bench runs


def _examples() -> list[tuple[str, phonenumbers.PhoneNumber]]:
    examples = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE):
            number = phonenumbers.example_number_for_type(region, number_type)
            if number is not None:
                examples.append((region, number))
    return examples


def kinds(count: int, seed: int = 17) -> dict[str, list[tuple[str | None, object]]]:
    """Inputs per kind: (default_region, value)."""
    rnd = random.Random(seed)
    examples = _examples()

    def pick() -> tuple[str, phonenumbers.PhoneNumber]:
        return examples[rnd.randrange(len(examples))]

    def fmt(number: phonenumbers.PhoneNumber, style: int) -> str:
        return phonenumbers.format_number(number, style)

    junk = ["", "n/a", "+7 912 CALL-NOW", "79123456789.0", "someone@example.com", "12345", "+", "ext. 12"]
    return {
        "'+' international, formatted, every country": [
            (None, fmt(pick()[1], PhoneNumberFormat.INTERNATIONAL)) for _ in range(count)],
        "'+7 9xx xxx-xx-xx', one country": [
            (None, f"+7 9{rnd.randrange(10**2):02d} {rnd.randrange(10**3):03d}-{rnd.randrange(10**2):02d}-"
                   f"{rnd.randrange(10**2):02d}") for _ in range(count)],
        "national format with the number's region": [
            (region, fmt(number, PhoneNumberFormat.NATIONAL)) for region, number in (pick() for _ in range(count))],
        "integers, no region": [
            (None, int(fmt(pick()[1], PhoneNumberFormat.E164)[1:])) for _ in range(count)],
        "integers, region DE (two readings ranked)": [
            ("DE", int(fmt(pick()[1], PhoneNumberFormat.E164)[1:])) for _ in range(count)],
        "Russian '8 9xx xxx-xx-xx', no region": [
            (None, f"8 9{rnd.randrange(10**2):02d} {rnd.randrange(10**3):03d}-{rnd.randrange(10**2):02d}-"
                   f"{rnd.randrange(10**2):02d}") for _ in range(count)],
        "junk": [(None, junk[i % len(junk)]) for i in range(count)],
    }


def measure(calls: Sequence[tuple[Callable[[object], object], object]], repeat: int) -> float:
    """Best CPU microseconds per call over ``repeat`` passes."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for normalize, value in calls:
            normalize(value)
        best = min(best, time.process_time() - start)
    return best / len(calls) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", type=int, default=100_000, help="inputs per kind (default 100,000)")
    parser.add_argument("--repeat", type=int, default=3, help="passes per kind; the best counts (default 3)")
    parser.add_argument("--check-cpu-us", type=float, default=CHECK_CPU_US,
                        help="CPU per checked number to compare with (default %(default)s us)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()

    normalizers: dict[str | None, PhoneNumberNormalizer] = {}

    def normalizer(region: str | None) -> PhoneNumberNormalizer:
        if region not in normalizers:
            normalizers[region] = PhoneNumberNormalizer(region)
        return normalizers[region]

    by_kind = kinds(args.numbers)
    results: dict[str, float] = {}
    mixed: list[tuple[Callable[[object], object], object]] = []
    for kind, inputs in by_kind.items():
        calls = [(normalizer(region), value) for region, value in inputs]
        results[kind] = measure(calls, args.repeat)
        mixed.extend(calls)
    random.Random(1).shuffle(mixed)
    mixed = mixed[: args.numbers]
    results["mixed (all kinds shuffled)"] = measure(mixed, args.repeat)
    if args.json:
        print(json.dumps({"us_per_number": results, "check_cpu_us": args.check_cpu_us}))
        return 0
    print(f"normalising, CPU per call (best of {args.repeat}; {args.numbers:,} inputs per kind), "
          f"against {args.check_cpu_us:,.0f} us of CPU per check")
    for kind, us in results.items():
        print(f"  {kind:48s} {us:6.1f} us  {us / args.check_cpu_us:6.2%} of a check")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
