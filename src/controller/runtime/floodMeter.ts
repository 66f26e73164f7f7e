// Whether a PgCluster's channel is flooded: new remote names (or names refused by maxPeers) per second, and
// whether that rate just crossed FLOOD_NAMES_PER_SECOND either way (an Event each time). Monotonic ms.
import { RateMeter } from '../../core/rateMeter.ts';

/** New remote names per second above which the channel is flooded. Nodes joining, even a whole cluster of them
 * at once, stay far below. */
export const FLOOD_NAMES_PER_SECOND = 100;

export interface FloodReading {
  perSecond: number;
  flooding: boolean;
  /** The flood just started or ended. */
  changed: boolean;
}

export class FloodMeter {
  readonly #names = new RateMeter();
  #flooding = false;

  /** A new remote name heard at `now`. */
  hit(now: number): void {
    this.#names.hit(now);
  }

  read(now: number): FloodReading {
    const perSecond = this.#names.perSecond(now);
    const flooding = perSecond > FLOOD_NAMES_PER_SECOND;
    const changed = flooding !== this.#flooding;
    this.#flooding = flooding;
    return { perSecond, flooding, changed };
  }
}
