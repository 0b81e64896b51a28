// `crosslink diagram [--format dot|svg|mermaid|json] [--output FILE]`: the overlay as the controller
// draws it (GET /v1/diagram) — boxes by zone, underlays, relays, permitted flows, health — for the
// connection paperwork. Printed, or written to a file; without --format, the file's extension
// chooses (.svg, .mmd, .json, else DOT).
import { writeFileSync } from 'node:fs';
import type { CommandModule } from 'yargs';
import { asArgs, connectionOptions, EXIT, processIo, withClient, type ConnArgs, type RemoteIo } from './connection.js';

export const FORMATS = ['dot', 'svg', 'mermaid', 'json'] as const;
export type Format = (typeof FORMATS)[number];

type DiagramArgs = ConnArgs & { format?: Format; output?: string };

/** The format a file name asks for; DOT when its extension says nothing we know. */
export function formatOfFile(path: string): Format {
  const ext = /\.([a-z]+)$/i.exec(path)?.[1]?.toLowerCase() ?? '';
  if (ext === 'svg') return 'svg';
  if (ext === 'mmd' || ext === 'mermaid' || ext === 'md') return 'mermaid';
  if (ext === 'json') return 'json';
  return 'dot';
}

export interface DiagramDeps {
  /** GET path on the controller: the body as text, or parsed when JSON. */
  get(path: string): Promise<unknown>;
  out(text: string): void;
  writeFile(path: string, text: string): void;
}

/** Fetches and prints or writes the diagram; the exit code. Failures to write are the caller's 1. */
export async function runDiagram(args: { format?: Format; output?: string }, deps: DiagramDeps): Promise<number> {
  const format = args.format ?? (args.output !== undefined ? formatOfFile(args.output) : 'dot');
  const body = await deps.get(`/v1/diagram?format=${format}`);
  const text = typeof body === 'string' ? body : `${JSON.stringify(body, null, 2)}\n`;
  if (args.output === undefined) {
    deps.out(text);
    return EXIT.ok;
  }
  deps.writeFile(args.output, text);
  deps.out(`wrote ${args.output} (${format}, ${Buffer.byteLength(text)} bytes)\n`);
  return EXIT.ok;
}

export function diagramCommand(
  io: RemoteIo = processIo,
  writeFile: (path: string, text: string) => void = (p, t) => writeFileSync(p, t),
): CommandModule<object, DiagramArgs> {
  return {
    command: 'diagram',
    describe:
      'Draw the overlay (boxes by zone, underlays, relays, permitted flows, health) as DOT, SVG, Mermaid or JSON',
    builder: (y) =>
      asArgs(
        connectionOptions(y)
          .option('format', {
            choices: FORMATS,
            describe: 'Output format [default: from the --output extension (.svg, .mmd, .json), else dot]',
          })
          .option('output', { alias: 'o', type: 'string', describe: 'Write to this file instead of stdout' })
          .example('$0 diagram | dot -Tpdf -o overlay.pdf', 'a PDF for the connection paperwork (Graphviz)')
          .example('$0 diagram --output overlay.svg', 'a standalone SVG')
          .example('$0 diagram --format mermaid', 'a Mermaid flowchart for a wiki page'),
      ),
    handler: async (args) => {
      if (args.output !== undefined && args.output.trim() === '') {
        io.err('crosslink: --output needs a file name\n');
        process.exitCode = EXIT.usage;
        return;
      }
      process.exitCode = await withClient(args, io, async (api) => {
        const deps: DiagramDeps = {
          get: async (path) => (await api.request('GET', path)).body,
          out: io.out,
          writeFile,
        };
        try {
          return await runDiagram(args, deps);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          // A file-system error (the controller's own errors have their handling in withClient).
          if (typeof code === 'string' && code.startsWith('E')) {
            io.err(`crosslink: cannot write ${args.output}: ${(e as Error).message}\n`);
            return EXIT.failed;
          }
          throw e;
        }
      });
    },
  };
}
