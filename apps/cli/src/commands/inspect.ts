import type { Command } from 'commander';
import type { CommandContext } from '../program';

export function registerInspect(program: Command, ctx: CommandContext): void {
  program
    .command('inspect')
    .description("tell an image's real format from its bytes and whether it is safe (exit 41 when it is not)")
    .argument('<file>', 'image file')
    .action(async (file: string) => (await import('./inspect-run')).runInspect(ctx, file));
}
