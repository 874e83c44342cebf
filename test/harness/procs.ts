/** Process helpers for tests: the testbed's, which the compiled bench and demo use too. */
export {
  run, runSync, sleep, pidAlive, killPidSync, systemBin, waitForTcpPort, ManagedProcess, CommandError, spawnOwned, atProcessEnd,
  ProcessTimeoutError, type RunResult, type RunOptions, type SpawnOptions,
} from '../../testbed';
