"""Generate data/houses.csv, the synthetic data set of the house-prices example.

Run it from anywhere: ``python make_data.py`` in a repository made by ``mlopsctl init
--example house-prices``, or ``python examples/house-prices/make_data.py`` in mlopsctl's
source; it writes data/ next to itself. NumPy and the standard library only; the seed is
fixed and every float is written with a fixed number of decimals and LF line endings, so
re-running it reproduces the committed file byte for byte.

Columns (1,500 rows):

* house_id: unique integer id (dropped by the use case).
* area_m2 (1 decimal), rooms, age_years, distance_km (2 decimals, ~0.5% missing so that the
  example exercises imputation): numeric.
* neighbourhood (5 values), energy_class (A-G), has_garden (yes/no): categorical.
* price_k: the sale price in thousands, the target: price per m2 of the neighbourhood times
  the area, adjusted for energy class, age, distance and garden, with multiplicative noise
  (a gradient-boosted model reaches an R^2 of about 0.8 on a held-out 20%).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SEED = 20240917
N_ROWS = 1500
OUTPUT = Path(__file__).resolve().parent / "data" / "houses.csv"

# neighbourhood -> (price per m2 in thousands, distance to the centre in km: low, high)
NEIGHBOURHOODS = {
    "centre": (5.2, 0.2, 2.0),
    "harbour": (4.4, 1.5, 5.0),
    "old_town": (4.0, 0.8, 3.5),
    "parkside": (3.4, 3.0, 9.0),
    "outskirts": (2.6, 7.0, 22.0),
}
NEIGHBOURHOOD_SHARE = (0.15, 0.15, 0.20, 0.25, 0.25)
ENERGY_CLASSES = ("A", "B", "C", "D", "E", "F", "G")
ENERGY_FACTOR = np.array([1.12, 1.07, 1.03, 1.00, 0.96, 0.92, 0.87])
GARDEN_SHARE = {"centre": 0.05, "harbour": 0.15, "old_town": 0.20, "parkside": 0.55}


def generate(rng: np.random.Generator, n: int) -> list[dict[str, str]]:
    names = list(NEIGHBOURHOODS)
    hood = rng.choice(len(names), size=n, p=NEIGHBOURHOOD_SHARE)
    price_m2 = np.array([NEIGHBOURHOODS[h][0] for h in names])[hood]
    low = np.array([NEIGHBOURHOODS[h][1] for h in names])[hood]
    high = np.array([NEIGHBOURHOODS[h][2] for h in names])[hood]

    area = np.round(np.clip(rng.lognormal(np.log(85.0), 0.35, size=n), 25.0, 300.0), 1)
    rooms = np.clip(np.round(area / 28.0 + rng.normal(0.5, 0.7, size=n)), 1, 9).astype(int)
    age = np.clip(np.round(rng.gamma(2.0, 18.0, size=n)), 0, 150).astype(int)
    distance = np.round(rng.uniform(low, high), 2)
    # Older houses tend to have a worse energy class.
    energy = np.clip(np.round(age / 25.0 + rng.normal(1.5, 1.2, size=n)), 0, 6).astype(int)
    garden_p = np.array([GARDEN_SHARE.get(h, 0.80) for h in names])[hood]
    garden = rng.random(n) < garden_p

    price = (
        area
        * price_m2
        * ENERGY_FACTOR[energy]
        * (1.0 - 0.25 * np.minimum(age, 100) / 100.0)
        * np.exp(-0.012 * distance)
        * np.where(garden, 1.07, 1.0)
        + 6.0 * rooms
    ) * rng.lognormal(0.0, 0.17, size=n)

    missing_distance = rng.random(n) < 0.005
    rows = []
    for i in range(n):
        rows.append(
            {
                "house_id": str(10001 + i),
                "area_m2": f"{area[i]:.1f}",
                "rooms": str(rooms[i]),
                "age_years": str(age[i]),
                "distance_km": "" if missing_distance[i] else f"{distance[i]:.2f}",
                "neighbourhood": names[hood[i]],
                "energy_class": ENERGY_CLASSES[energy[i]],
                "has_garden": "yes" if garden[i] else "no",
                "price_k": f"{price[i]:.1f}",
            }
        )
    return rows


def main() -> None:
    rows = generate(np.random.default_rng(SEED), N_ROWS)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    with OUTPUT.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {OUTPUT}")


if __name__ == "__main__":
    main()
