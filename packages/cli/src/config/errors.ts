/** A config problem a person can fix: the message names the file, flag or field. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
