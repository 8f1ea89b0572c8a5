// What a page of the interface provides to the router.

export interface Page {
  title: string;
  /** Builds the page into `root`; the returned function stops its timers and listeners. */
  mount(root: HTMLElement, params: URLSearchParams): Promise<(() => void) | void> | (() => void) | void;
  /** When true, a change of the URL's parameters calls `update` instead of remounting. */
  keepOnParams?: boolean;
  update?(params: URLSearchParams): void;
}
