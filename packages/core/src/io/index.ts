export {
  INDEX_FILE,
  openCheckpoint,
  type SaveOptions,
  SINGLE_FILE,
  saveCheckpointTensors,
} from './checkpoint.js';
export {
  type ReadTensorOptions,
  readSafetensorsHeader,
  readTensor,
  type SafetensorsEntry,
  type SafetensorsHeader,
  type WriteOptions,
  writeSafetensors,
} from './safetensors.js';
