import { rename, unlink, writeFile } from 'node:fs/promises'

/**
 * Writes `text` to `file` through a temporary file next to it, then a rename:
 * a reader (such as a monitor loading the manifest) never sees half a file,
 * and a failed write leaves the old file as it was.
 */
export async function writeAtomically(file: string, text: string): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`
  try {
    await writeFile(temporary, text, 'utf8')
    await rename(temporary, file)
  } catch (error) {
    await unlink(temporary).catch(() => {})
    throw error
  }
}
