// Tests read many JSON bodies; let `Response.json()` be loosely typed there (production code parses
// with zod instead).
export {};
declare global {
  interface Response {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    json(): Promise<any>;
  }
  type BodyInit = NonNullable<ConstructorParameters<typeof Response>[0]>;
}
