// The board over a time window. The API answers a seat's status at one instant; a booking
// covers hours. A seat is only bookable if it is free for the whole window, so the map asks
// about enough instants that any reservation of an hour or more overlapping the window covers
// one of them (each whole hour of the window and its last second), and shows each seat's worst
// status among them.

import type { Board, BoardChange, SeatStatus } from "./model";
import { plusHours } from "./time";

const RANK: Record<SeatStatus, number> = { FREE: 0, HELD: 1, OCCUPIED: 2, DISABLED: 3 };

/** The instants to ask the board about for `[start, start + hours)`. */
export function windowInstants(start: Date, hours: number): Date[] {
  const instants: Date[] = [];
  for (let i = 0; i < hours; i++) instants.push(plusHours(start, i));
  instants.push(new Date(plusHours(start, hours).getTime() - 1000));
  return instants;
}

export interface WindowStatus {
  status: SeatStatus;
  /** The end of the reservation that makes the seat held or occupied, if any. */
  until?: string;
}

/** Each seat's worst status across `boards`. */
export function combineBoards(boards: readonly Board[]): Map<string, WindowStatus> {
  const combined = new Map<string, WindowStatus>();
  for (const board of boards) {
    for (const seat of board.seats) {
      const known = combined.get(seat.seatId);
      if (!known || RANK[seat.status] > RANK[known.status]) {
        combined.set(
          seat.seatId,
          seat.until ? { status: seat.status, until: seat.until } : { status: seat.status },
        );
      }
    }
  }
  return combined;
}

/** Whether a board change can alter what a map of `[start, end)` shows. */
export function touchesWindow(change: BoardChange, start: Date, end: Date): boolean {
  if (!("startsAt" in change)) return true;
  return new Date(change.startsAt) < end && new Date(change.endsAt) > start;
}
