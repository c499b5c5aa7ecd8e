// The cafe's floor as the catalogue describes it: one grid per zone, a button per seat,
// coloured (and marked, for those who do not see colour) by its status over the chosen window.
//
// The map is one radio group: Tab enters it at the chosen seat, the arrow keys move (left and
// right through the seats in order, up and down to the seat above or below on screen, however
// the grid wrapped), Home and End jump, Enter or Space picks.

import { useRef, useState } from "preact/hooks";
import type { WindowStatus } from "../board";
import { useI18n } from "../i18n";
import type { Seat, SeatStatus } from "../model";

export type MapStatus = SeatStatus | "UNKNOWN";

const GLYPH: Record<MapStatus, string> = {
  FREE: "",
  HELD: "◔",
  OCCUPIED: "●",
  DISABLED: "✕",
  UNKNOWN: "…",
};

export function seatStatus(
  seat: Seat,
  statuses: ReadonlyMap<string, WindowStatus> | null,
  taken: ReadonlySet<string>,
): MapStatus {
  if (!seat.enabled) return "DISABLED";
  const status = statuses?.get(seat.id)?.status;
  if (!status) return statuses ? "FREE" : "UNKNOWN";
  return status === "FREE" && taken.has(seat.id) ? "HELD" : status;
}

interface Zone {
  code: string;
  kind: string;
  price: Seat["hourlyPrice"];
  seats: Seat[];
}

function zonesOf(seats: readonly Seat[]): Zone[] {
  const zones: Zone[] = [];
  for (const seat of seats) {
    let zone = zones.find((z) => z.code === seat.zone);
    if (!zone) {
      zone = { code: seat.zone, kind: seat.kind, price: seat.hourlyPrice, seats: [] };
      zones.push(zone);
    }
    zone.seats.push(seat);
  }
  return zones;
}

type Direction = "up" | "down";

/** The seat on screen above or below `from`: the nearest row that way, then the nearest
 * column in it. */
function vertical(buttons: HTMLElement[], from: HTMLElement, direction: Direction) {
  const box = from.getBoundingClientRect();
  const cx = box.left + box.width / 2;
  const cy = box.top + box.height / 2;
  const candidates = buttons
    .map((b) => {
      const r = b.getBoundingClientRect();
      return { b, dx: Math.abs(r.left + r.width / 2 - cx), dy: r.top + r.height / 2 - cy };
    })
    .filter(({ dy }) => (direction === "down" ? dy > box.height / 2 : dy < -box.height / 2));
  if (candidates.length === 0) return undefined;
  const nearestRow = Math.min(...candidates.map((c) => Math.abs(c.dy)));
  return candidates
    .filter((c) => Math.abs(c.dy) <= nearestRow + box.height / 2)
    .sort((a, b) => a.dx - b.dx)[0]?.b;
}

export interface SeatMapProps {
  seats: readonly Seat[];
  statuses: ReadonlyMap<string, WindowStatus> | null;
  taken: ReadonlySet<string>;
  selected: string | null;
  onSelect(seatId: string): void;
  labelledBy: string;
}

export function SeatMap(props: SeatMapProps) {
  const { t, won } = useI18n();
  const container = useRef<HTMLDivElement>(null);
  const [focused, setFocused] = useState<string | null>(null);

  const statusOf = (seat: Seat) => seatStatus(seat, props.statuses, props.taken);
  const firstFree = props.seats.find((s) => statusOf(s) === "FREE")?.id;
  // The one seat Tab lands on.
  const tabStop =
    [focused, props.selected, firstFree, props.seats[0]?.id].find(
      (id) => id && props.seats.some((s) => s.id === id),
    ) ?? null;

  const onKeyDown = (event: KeyboardEvent) => {
    const buttons = Array.from(
      container.current?.querySelectorAll<HTMLElement>("[data-seat]") ?? [],
    );
    const from = event.target as HTMLElement;
    const index = buttons.indexOf(from);
    if (index < 0) return;
    let to: HTMLElement | undefined;
    switch (event.key) {
      case "ArrowRight":
        to = buttons[Math.min(index + 1, buttons.length - 1)];
        break;
      case "ArrowLeft":
        to = buttons[Math.max(index - 1, 0)];
        break;
      case "ArrowDown":
        to = vertical(buttons, from, "down");
        break;
      case "ArrowUp":
        to = vertical(buttons, from, "up");
        break;
      case "Home":
        to = buttons[0];
        break;
      case "End":
        to = buttons[buttons.length - 1];
        break;
      default:
        return;
    }
    event.preventDefault();
    if (to) {
      setFocused(to.dataset.seat ?? null);
      to.focus();
    }
  };

  return (
    <div
      class="seat-map"
      role="radiogroup"
      aria-labelledby={props.labelledBy}
      ref={container}
      onKeyDown={onKeyDown}
    >
      {zonesOf(props.seats).map((zone) => {
        const kind = t.seatKind[zone.kind] ?? zone.kind;
        const headingId = `zone-${zone.code}`;
        return (
          // biome-ignore lint/a11y/useSemanticElements: a zone inside the radio group; a fieldset would make each zone a group of its own form controls
          <div class="zone" role="group" aria-labelledby={headingId} key={zone.code}>
            <h3 id={headingId}>{t.zoneHeading(zone.code, kind, won(zone.price.amount))}</h3>
            <div class={`seats kind-${zone.kind}`}>
              {zone.seats.map((seat) => {
                const status = statusOf(seat);
                const checked = props.selected === seat.id;
                const statusText = status === "UNKNOWN" ? t.loadingMap : t.seatStatus[status];
                return (
                  // biome-ignore lint/a11y/useSemanticElements: seats are buttons with 2-D arrow keys; native radios move in one line and skip the unavailable seats a listener should still hear about
                  <button
                    type="button"
                    role="radio"
                    key={seat.id}
                    class="seat"
                    data-seat={seat.id}
                    data-status={status}
                    aria-checked={checked}
                    aria-disabled={status !== "FREE"}
                    aria-label={t.seatLabel(
                      seat.id,
                      t.seatKind[seat.kind] ?? seat.kind,
                      won(seat.hourlyPrice.amount),
                      statusText,
                    )}
                    tabIndex={seat.id === tabStop ? 0 : -1}
                    onFocus={() => setFocused(seat.id)}
                    onClick={() => props.onSelect(seat.id)}
                  >
                    <span class="seat-number">{seat.id.split("-").pop()}</span>
                    <span class="seat-glyph" aria-hidden="true">
                      {GLYPH[status]}
                    </span>
                  </button>
                );
              })}
            </div>
          </div>
        );
      })}
    </div>
  );
}

export function Legend() {
  const { t } = useI18n();
  const items: SeatStatus[] = ["FREE", "HELD", "OCCUPIED", "DISABLED"];
  return (
    <ul class="legend" aria-label={t.legend}>
      {items.map((status) => (
        <li key={status}>
          <span class="swatch seat" data-status={status} aria-hidden="true">
            <span class="seat-glyph">{GLYPH[status]}</span>
          </span>
          {t.seatStatus[status]}
        </li>
      ))}
      <li>
        <span class="swatch seat" data-status="FREE" data-selected aria-hidden="true" />
        {t.selectedSeat}
      </li>
    </ul>
  );
}
