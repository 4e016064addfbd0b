//! What a series does at each hour of the day, day after day: the largest
//! excursion that began in each hour (UTC), today, yesterday and the day
//! before. A deviation no larger than what the series reached at the same
//! time of day on each of the last two days is its routine (a daily job).

/// Seconds in a day.
const DAY: i64 = 86_400;

/// The per-hour record of the last three days.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct DailyRecord {
    /// Per hour: today's, yesterday's and the day before's largest
    /// excursion (f32 keeps the per-series state small).
    hourly: [[f32; 24]; 3],
    /// Today, in days since 1970.
    day: i64,
}

impl DailyRecord {
    /// Nothing recorded yet.
    pub(super) fn new() -> DailyRecord {
        DailyRecord {
            hourly: [[0.0; 24]; 3],
            day: 0,
        }
    }

    /// The hour of the day (UTC) of `ts`.
    pub(super) fn hour_of(ts: i64) -> u8 {
        (ts.rem_euclid(DAY) / 3600) as u8
    }

    /// Moves the record on to the day of `ts` (never back).
    pub(super) fn roll(&mut self, ts: i64) {
        let day = ts.div_euclid(DAY);
        let gone = (day - self.day).clamp(0, 3);
        for _ in 0..gone {
            self.hourly.rotate_right(1);
            self.hourly[0] = [0.0; 24];
        }
        self.day = self.day.max(day);
    }

    /// An excursion of `size` that began in `hour` ended today.
    pub(super) fn record(&mut self, hour: u8, size: f64) {
        let h = &mut self.hourly[0][usize::from(hour) % 24];
        *h = h.max(size as f32);
    }

    /// How far the series went, in excursions that began within an hour of
    /// `hour` (a job's start drifts across an hour's edge), on both of the
    /// last two days: what it does at this time of day as a routine.
    pub(super) fn usual_at(&self, hour: u8) -> f64 {
        let h = usize::from(hour);
        let on = |d: &[f32; 24]| {
            let at = |k: usize| f64::from(d[k % 24]);
            at(h + 23).max(at(h)).max(at(h + 1))
        };
        on(&self.hourly[1]).min(on(&self.hourly[2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONDAY: i64 = 1_748_822_400;

    #[test]
    fn a_routine_is_what_both_of_the_last_two_days_did_near_that_hour() {
        let mut r = DailyRecord::new();
        r.roll(MONDAY);
        r.record(3, 20.0);
        r.roll(MONDAY + DAY);
        assert_eq!(r.usual_at(3), 0.0, "one day is not a routine");
        r.record(4, 15.0);
        r.roll(MONDAY + 2 * DAY);
        // Monday 03:00 (20) and Tuesday 04:00 (15): within an hour of 3 and 4
        // on both days, the smaller of the two days counts.
        assert_eq!(r.usual_at(3), 15.0);
        assert_eq!(r.usual_at(4), 15.0);
        assert_eq!(r.usual_at(6), 0.0);
        r.roll(MONDAY + 3 * DAY);
        assert_eq!(r.usual_at(4), 0.0, "Wednesday had no run");
    }

    #[test]
    fn a_gap_of_days_forgets_and_time_never_goes_back() {
        let mut r = DailyRecord::new();
        r.roll(MONDAY);
        r.record(10, 30.0);
        r.roll(MONDAY + DAY);
        r.record(10, 30.0);
        r.roll(MONDAY + 2 * DAY);
        assert_eq!(r.usual_at(10), 30.0);
        r.roll(MONDAY - DAY);
        assert_eq!(
            r.usual_at(10),
            30.0,
            "an older sample does not move the days"
        );
        r.roll(MONDAY + 9 * DAY);
        assert_eq!(r.usual_at(10), 0.0);
        assert_eq!(DailyRecord::hour_of(MONDAY + 10 * 3600 + 59), 10);
        assert_eq!(DailyRecord::hour_of(MONDAY - 1), 23);
    }
}
