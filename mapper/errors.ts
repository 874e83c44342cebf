/** Mapper errors: one class per condition, each with `name` and `code`. */

export class UnknownOriginalIpError extends Error {
  override name = 'UnknownOriginalIpError';
  readonly code = 'ERR_UNKNOWN_ORIGINAL_IP';
  constructor(readonly originalIp: string, readonly reason = 'no member has this original IP') {
    super(`unknown original IP ${originalIp}: ${reason}`);
  }
}

export class InvalidIpError extends Error {
  override name = 'InvalidIpError';
  readonly code = 'ERR_INVALID_IP';
  constructor(readonly input: string) {
    super(`not an IPv4 address: ${JSON.stringify(input.slice(0, 64))}`);
  }
}

/** The lookup API answered something other than 200/404/400, or could not be reached. */
export class MapperApiError extends Error {
  override name = 'MapperApiError';
  readonly code = 'ERR_MAPPER_API';
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

export class DirectoryClosedError extends Error {
  override name = 'DirectoryClosedError';
  readonly code = 'ERR_DIRECTORY_CLOSED';
  constructor() {
    super('directory is closed');
  }
}
