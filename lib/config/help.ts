/**
 * `--help` and the README's settings reference, rendered from the settings table.
 *
 * @module
 */
import { type HelpEntry, renderHelp, renderReference } from "./cli.ts";
import { EXTRA_FLAGS } from "./flags.ts";
import { CONFIG_KEYS } from "./settings.ts";

const SUMMARY =
  "Hot-plugs and unplugs secondary network interfaces into running pods on this node when their k8s.v1.cni.cncf.io/networks annotation changes, through the multus thick daemon and the CRI runtime.";

function helpEntries(): HelpEntry[] {
  return [
    ...EXTRA_FLAGS.slice(0, 1),
    ...CONFIG_KEYS.map((s) => ({
      flag: s.flag,
      placeholder: s.placeholder,
      description: s.description,
      defaultText: s.defaultText,
      env: s.env,
      fileKey: s.key,
    })),
    ...EXTRA_FLAGS.slice(1),
  ];
}

/**
 * The agent's part of `--help`: every flag and config key, with its default and environment
 * variable (`programHelp` in `lib/commands/command_line.ts` adds the commands for people).
 */
export function helpText(): string {
  return renderHelp(helpEntries(), SUMMARY);
}

/** The settings reference as a Markdown table (the README's configuration section). */
export function referenceMarkdown(): string {
  return renderReference(helpEntries());
}
