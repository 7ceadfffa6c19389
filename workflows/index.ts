export { dailyPipeline } from './daily-pipeline';
export type { DailyPipelineInput } from './daily-pipeline';
export { backfill } from './backfill';
export type { BackfillInput, BackfillDateResult, BackfillProgress, BackfillReport } from './backfill';
export { ingestEventFile } from './ingest-event-file';
export type { IngestEventFileInput, IngestEventFileResult } from './ingest-event-file';
export { lakeMaintenance } from './lake-maintenance';
export type { LakeMaintenanceInput } from './lake-maintenance';
