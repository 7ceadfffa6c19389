export { dailyPipeline } from './daily-pipeline';
export type { DailyPipelineInput } from './daily-pipeline';
