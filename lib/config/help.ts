/**
 * `--help` and the README's settings reference, rendered from the settings table.
 *
 * @module
 */
import { type HelpEntry, renderHelp, renderReference } from "./cli.ts";
import { EXTRA_FLAGS } from "./flags.ts";
import { CONFIG_KEYS } from "./settings.ts";
import { commandsSummary } from "./commands.ts";

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
 * The `--help` text: every flag and config key, with its default and environment variable,
 * then the commands for people (each has its own `--help`).
 */
export function helpText(): string {
  return `${
    renderHelp(helpEntries(), SUMMARY).replace(/\n$/, "")
  }\n\nCommands for people who edit pod networks (each has its own --help):\n${commandsSummary()}\n`;
}

/** The settings reference as a Markdown table (the README's configuration section). */
export function referenceMarkdown(): string {
  return renderReference(helpEntries());
}
