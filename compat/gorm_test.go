package compat_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
)

type gAuthor struct {
	ID        uint    `gorm:"primaryKey"`
	Name      string  `gorm:"size:100;not null;uniqueIndex"`
	Email     *string `gorm:"size:200"`
	Born      time.Time
	Rating    float64
	Active    bool    `gorm:"not null;default:true"`
	Books     []gBook `gorm:"foreignKey:AuthorID"`
	CreatedAt time.Time
	UpdatedAt time.Time
	DeletedAt gorm.DeletedAt `gorm:"index"`
}

func (gAuthor) TableName() string { return "authors" }

type gBook struct {
	ID       uint
	AuthorID uint   `gorm:"index"`
	Title    string `gorm:"size:200;not null"`
	Pages    int
	Price    float64 `gorm:"type:decimal(10,2)"`
	Cover    []byte
	Tags     []gTag `gorm:"many2many:book_tags"`
}

func (gBook) TableName() string { return "books" }

type gTag struct {
	ID   uint
	Name string `gorm:"size:50;uniqueIndex"`
}

func (gTag) TableName() string { return "tags" }

// gormNow is GORM's clock on both sides, so that CreatedAt/UpdatedAt compare equal.
var gormNow = time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.UTC)

// TestGORM runs GORM's ordinary usage — AutoMigrate (twice) and migrator introspection, Create with
// associations, CreateInBatches, First, Where/Find, Updates, soft and hard Delete, Transaction
// (commit, rollback, nested savepoint), Begin/Commit, Preload (has-many, many2many), Joins + Scan,
// Group/Having, Raw/Exec, Rows/ScanRows, Pluck/Count, OnConflict, FirstOrCreate, Association —
// over hasql's *sql.DB (postgres.New / mysql.New with Conn) and over GORM's own raw-driver open
// (postgres.Open / mysql.Open), and compares results and the SQL GORM issued. A third side runs
// the hasql one with PrepareStmt: true.
func TestGORM(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			for _, mode := range []gormMode{{}, {prepare: true}, {driverName: true}} {
				raw := openTarget(t, kind, false)
				h := openTarget(t, kind, true)
				t.Run(mode.String(), func(t *testing.T) {
					want, wantSQL := gormScenario(t, raw, gormOpen(t, raw, mode))
					got, gotSQL := gormScenario(t, h, gormOpen(t, h, mode))
					compareTranscripts(t, mode.String(), got, want)
					if mode.driverName && kind == "postgres" {
						// GORM's postgres migrator passes pgx.QueryExecModeSimpleProtocol as an
						// argument only when DriverName is "" or "pgx", and its logger prints that
						// argument into the SQL: the text differs, what runs does not.
						return
					}
					// GORM ranges over maps in places (constraints, …): compare the statements as a
					// multiset.
					compareTranscripts(t, mode.String()+" SQL", sortSteps(gotSQL), sortSteps(wantSQL))
				})
			}
		})
	}
}

// gormMode is how GORM is opened. prepare: PrepareStmt on both sides (GORM issues different SQL
// with it: the postgres migrator drops its simple-protocol argument). driverName: the hasql side
// lets GORM open hasql itself (Config{DriverName: "hasql", DSN: "pgx:…"}) instead of Conn.
type gormMode struct{ prepare, driverName bool }

func (m gormMode) String() string {
	switch {
	case m.prepare:
		return "hasql+PrepareStmt"
	case m.driverName:
		return "hasql-by-DriverName"
	}
	return "hasql"
}

// sqlLog is a GORM logger that records every statement (database name replaced by "DB").
type sqlLog struct {
	mu     sync.Mutex
	dbName string
	tr     transcript
}

func (l *sqlLog) LogMode(logger.LogLevel) logger.Interface      { return l }
func (l *sqlLog) Info(context.Context, string, ...interface{})  {}
func (l *sqlLog) Warn(context.Context, string, ...interface{})  {}
func (l *sqlLog) Error(context.Context, string, ...interface{}) {}
func (l *sqlLog) Trace(_ context.Context, _ time.Time, fc func() (string, int64), err error) {
	s, rows := fc()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tr.add(normalizeSQL(s, l.dbName), fmt.Sprintf("rows=%d err=%s", rows, strings.ReplaceAll(errText(err), l.dbName, "DB")))
}

var savepointName = regexp.MustCompile(`\bsp\d+\b`)

// normalizeSQL removes what legitimately differs between two runs of the same scenario: the
// database name, GORM's random savepoint names, and the order of CREATE TABLE constraints (GORM
// ranges over a map).
func normalizeSQL(s, dbName string) string {
	s = strings.ReplaceAll(s, dbName, "DB")
	s = savepointName.ReplaceAllString(s, "spN")
	if strings.HasPrefix(s, "CREATE TABLE") && strings.Contains(s, ",CONSTRAINT ") && strings.HasSuffix(s, ")") {
		parts := strings.Split(strings.TrimSuffix(s, ")"), ",CONSTRAINT ")
		sort.Strings(parts[1:])
		s = strings.Join(parts, ",CONSTRAINT ") + ")"
	}
	return s
}

func dbNameOf(tg *target) string {
	dsn := tg.RawDSN
	if i := strings.IndexByte(dsn, '?'); i >= 0 {
		dsn = dsn[:i]
	}
	return dsn[strings.LastIndexByte(dsn, '/')+1:]
}

type gormSide struct {
	db  *gorm.DB
	log *sqlLog
}

// gormOpen opens GORM the recommended way for the side: over hasql's *sql.DB with Conn, or with
// GORM's own Open(dsn) for the raw driver (or, mode.driverName, GORM opening "hasql" itself).
func gormOpen(t *testing.T, tg *target, mode gormMode) gormSide {
	t.Helper()
	log := &sqlLog{dbName: dbNameOf(tg)}
	cfg := &gorm.Config{Logger: log, NowFunc: func() time.Time { return gormNow }, PrepareStmt: mode.prepare, TranslateError: true}
	var d gorm.Dialector
	switch {
	case tg.Kind == "postgres" && tg.Hasql && mode.driverName:
		d = postgres.New(postgres.Config{DriverName: "hasql", DSN: tg.DSN})
	case tg.Kind == "postgres" && tg.Hasql:
		d = postgres.New(postgres.Config{Conn: tg.DB})
	case tg.Kind == "postgres":
		d = postgres.Open(tg.RawDSN)
	case tg.Hasql && mode.driverName:
		d = mysql.New(mysql.Config{DriverName: "hasql", DSN: tg.DSN})
	case tg.Hasql:
		d = mysql.New(mysql.Config{Conn: tg.DB, SkipInitializeWithVersion: false})
	default:
		d = mysql.Open(tg.RawDSN)
	}
	db, err := gorm.Open(d, cfg)
	if err != nil {
		t.Fatalf("%s: gorm.Open: %v", tg.Name, err)
	}
	if !tg.Hasql || mode.driverName {
		// GORM opened its own *sql.DB.
		sqlDB, err := db.DB()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sqlDB.Close() })
		if tg.Hasql {
			tg.instrument(t, sqlDB)
		}
	}
	if mode.prepare {
		// PrepareStmt keeps its statements in a cache of its own: close them before the *sql.DB.
		t.Cleanup(func() {
			if p, ok := db.ConnPool.(*gorm.PreparedStmtDB); ok {
				p.Close()
			}
		})
	}
	return gormSide{db: db, log: log}
}

func gormScenario(t *testing.T, tg *target, s gormSide) (*transcript, *transcript) {
	t.Helper()
	db := s.db
	tr := &transcript{}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s (GORM over %s %s): %v", what, tg.Name, tg.Kind, err)
		}
	}
	str := func(s string) *string { return &s }

	// Migrations and introspection.
	must("AutoMigrate", db.AutoMigrate(&gAuthor{}, &gBook{}, &gTag{}))
	must("AutoMigrate again", db.AutoMigrate(&gAuthor{}, &gBook{}, &gTag{}))
	m := db.Migrator()
	tables, err := m.GetTables()
	must("GetTables", err)
	tr.add("tables", sortedCopy(tables))
	tr.add("HasTable book_tags", m.HasTable("book_tags"))
	tr.add("HasIndex authors name", m.HasIndex(&gAuthor{}, "Name"))
	tr.add("HasColumn books cover", m.HasColumn(&gBook{}, "Cover"))
	for _, model := range []any{&gAuthor{}, &gBook{}} {
		cts, err := m.ColumnTypes(model)
		must("ColumnTypes", err)
		var cols []string
		for _, c := range cts {
			ct, _ := c.ColumnType()
			pk, _ := c.PrimaryKey()
			ai, _ := c.AutoIncrement()
			ln, lnOK := c.Length()
			p, sc, psOK := c.DecimalSize()
			nu, nuOK := c.Nullable()
			un, _ := c.Unique()
			dv, dvOK := c.DefaultValue()
			cols = append(cols, fmt.Sprintf("%s %s %s pk=%v ai=%v len=%d/%v dec=%d,%d/%v null=%v/%v uniq=%v def=%q/%v scan=%v",
				c.Name(), c.DatabaseTypeName(), ct, pk, ai, ln, lnOK, p, sc, psOK, nu, nuOK, un, dv, dvOK, c.ScanType()))
		}
		tr.add(fmt.Sprintf("ColumnTypes %T", model), cols)
		idx, err := m.GetIndexes(model)
		must("GetIndexes", err)
		var ix []string
		for _, i := range idx {
			u, _ := i.Unique()
			pk, _ := i.PrimaryKey()
			ix = append(ix, fmt.Sprintf("%s %s %v unique=%v pk=%v", i.Table(), i.Name(), i.Columns(), u, pk))
		}
		tr.add(fmt.Sprintf("GetIndexes %T", model), sortedCopy(ix))
	}

	// Create with associations (has-many, many2many), and in batches.
	tags := []gTag{{Name: "math"}, {Name: "computing"}, {Name: "poetry"}}
	must("Create tags", db.Create(&tags).Error)
	ada := gAuthor{Name: "Ada", Email: str("ada@example.org"), Born: time.Date(1815, 12, 10, 0, 0, 0, 0, time.UTC), Rating: 4.5, Active: true,
		Books: []gBook{
			{Title: "Notes", Pages: 65, Price: 12.5, Cover: []byte{1, 2, 3}, Tags: []gTag{tags[0], tags[1]}},
			{Title: "Letters", Pages: 200, Price: 30, Tags: []gTag{tags[2]}},
		}}
	res := db.Create(&ada)
	must("Create with associations", res.Error)
	tr.add("Create ada", fmt.Sprint(ada.ID, res.RowsAffected, ada.Books[0].ID, ada.Books[1].ID, ada.CreatedAt))
	batch := []gAuthor{{Name: "Alan", Rating: 4}, {Name: "Grace", Rating: 5, Active: true}, {Name: "Edsger", Rating: 3.5},
		{Name: "Barbara", Rating: 4.25, Active: true}, {Name: "Donald", Email: str("knuth@example.org"), Rating: 5}}
	res = db.CreateInBatches(&batch, 2)
	must("CreateInBatches", res.Error)
	var ids []uint
	for _, a := range batch {
		ids = append(ids, a.ID)
	}
	tr.add("CreateInBatches", fmt.Sprint(res.RowsAffected, ids))

	// Queries.
	var a gAuthor
	must("First", db.First(&a, ada.ID).Error)
	tr.add("First", a)
	var list []gAuthor
	must("Where/Find", db.Where("name LIKE ?", "%a%").Order("id").Find(&list).Error)
	tr.add("Where LIKE", list)
	list = nil
	must("Where struct", db.Where(&gAuthor{Active: true}).Where("rating >= ?", 4.5).Order("name").Find(&list).Error)
	tr.add("Where struct", list)
	list = nil
	must("Where IN", db.Where("name IN ?", []string{"Alan", "Grace", "Nobody"}).Order("id DESC").Limit(5).Offset(0).Find(&list).Error)
	tr.add("Where IN", list)
	var last gAuthor
	must("Last", db.Last(&last).Error)
	tr.add("Last", last.Name)
	err = db.First(&a, 9999).Error
	tr.add("First missing: ErrRecordNotFound", errors.Is(err, gorm.ErrRecordNotFound))

	// Updates.
	res = db.Model(&gAuthor{}).Where("id = ?", batch[0].ID).Updates(gAuthor{Rating: 4.75, Email: str("alan@example.org")})
	must("Updates struct", res.Error)
	tr.add("Updates struct rows", res.RowsAffected)
	res = db.Model(&batch[1]).Updates(map[string]any{"rating": gorm.Expr("rating - ?", 0.5), "active": false})
	must("Updates map", res.Error)
	tr.add("Updates map rows", res.RowsAffected)
	res = db.Model(&gAuthor{}).Where("rating < ?", 4).Update("active", true)
	must("Update", res.Error)
	tr.add("Update rows", res.RowsAffected)
	a = gAuthor{}
	must("Take", db.Take(&a, batch[1].ID).Error)
	tr.add("after Updates", a)

	// Deletes: soft, then hard.
	res = db.Delete(&gAuthor{}, batch[2].ID)
	must("Delete soft", res.Error)
	tr.add("Delete soft rows", res.RowsAffected)
	var n, nAll int64
	must("Count", db.Model(&gAuthor{}).Count(&n).Error)
	must("Count unscoped", db.Unscoped().Model(&gAuthor{}).Count(&nAll).Error)
	tr.add("Count/Unscoped", [2]int64{n, nAll})
	res = db.Unscoped().Delete(&gAuthor{}, batch[2].ID)
	must("Delete hard", res.Error)
	tr.add("Delete hard rows", res.RowsAffected)

	// Transactions.
	errRollback := errors.New("roll back, please")
	err = db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&gAuthor{Name: "Ghost"}).Error; err != nil {
			return err
		}
		return errRollback
	})
	tr.add("Transaction rollback", errors.Is(err, errRollback))
	err = db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&gAuthor{Name: "Kept", Rating: 1}).Error; err != nil {
			return err
		}
		// Nested: a savepoint rolled back on its own.
		_ = tx.Transaction(func(tx2 *gorm.DB) error {
			if err := tx2.Create(&gAuthor{Name: "Savepointed"}).Error; err != nil {
				return err
			}
			return errRollback
		})
		return tx.Model(&gAuthor{}).Where("name = ?", "Kept").Update("rating", 2).Error
	})
	must("Transaction nested", err)
	tx := db.Begin()
	must("Begin", tx.Error)
	must("tx Create", tx.Create(&gBook{AuthorID: batch[0].ID, Title: "On Computable Numbers", Pages: 36, Price: 9.99}).Error)
	must("Commit", tx.Commit().Error)
	var names []string
	must("Pluck", db.Model(&gAuthor{}).Order("id").Pluck("name", &names).Error)
	tr.add("names after transactions", names)
	var kept gAuthor
	must("Where Kept", db.Where("name = ?", "Kept").First(&kept).Error)
	tr.add("Kept", kept.Rating)

	// Preload: has-many and many2many.
	var withBooks []gAuthor
	must("Preload", db.Preload("Books", func(q *gorm.DB) *gorm.DB { return q.Order("books.id") }).
		Preload("Books.Tags", func(q *gorm.DB) *gorm.DB { return q.Order("tags.id") }).
		Where("id IN ?", []uint{ada.ID, batch[0].ID}).Order("id").Find(&withBooks).Error)
	tr.add("Preload", withBooks)

	// Association mode.
	book := withBooks[0].Books[1]
	assoc := db.Model(&book).Association("Tags")
	must("Association Append", assoc.Append(&tags[0]))
	tr.add("Association Count", db.Model(&book).Association("Tags").Count())
	must("Association Replace", db.Model(&book).Association("Tags").Replace([]gTag{tags[1]}))
	var bookTags []gTag
	must("Association Find", db.Model(&book).Association("Tags").Find(&bookTags))
	tr.add("Association Find", bookTags)

	// Joins + Scan, Group/Having, Raw, Exec, Rows.
	type titleAuthor struct {
		Title  string
		Author string
		Price  float64
	}
	var joined []titleAuthor
	must("Joins Scan", db.Model(&gBook{}).Select("books.title, authors.name AS author, books.price").
		Joins("JOIN authors ON authors.id = books.author_id").Order("books.id").Scan(&joined).Error)
	tr.add("Joins Scan", joined)
	type perAuthor struct {
		AuthorID uint
		N        int64
		Pages    int64
	}
	var groups []perAuthor
	must("Group", db.Model(&gBook{}).Select("author_id, COUNT(*) AS n, SUM(pages) AS pages").
		Group("author_id").Having("COUNT(*) >= ?", 1).Order("author_id").Scan(&groups).Error)
	tr.add("Group/Having", groups)
	res = db.Exec("UPDATE books SET pages = pages + ? WHERE author_id = ?", 10, ada.ID)
	must("Exec", res.Error)
	tr.add("Exec rows", res.RowsAffected)
	var rawRows []struct {
		Name  string
		Books int64
	}
	must("Raw", db.Raw(`SELECT authors.name, COUNT(books.id) AS books FROM authors
		LEFT JOIN books ON books.author_id = authors.id
		WHERE authors.deleted_at IS NULL AND authors.rating > ? GROUP BY authors.name ORDER BY authors.name`, 1.5).Scan(&rawRows).Error)
	tr.add("Raw Scan", rawRows)
	var total sql.NullFloat64
	must("Raw Row", db.Raw("SELECT SUM(price) FROM books").Row().Scan(&total))
	tr.add("Raw Row", total)
	rows, err := db.Model(&gBook{}).Where("pages > ?", 50).Order("id").Rows()
	must("Rows", err)
	var scanned []gBook
	for rows.Next() {
		var b gBook
		must("ScanRows", db.ScanRows(rows, &b))
		scanned = append(scanned, b)
	}
	must("Rows.Err", rows.Err())
	rows.Close()
	tr.add("Rows/ScanRows", scanned)

	// Upserts and errors.
	res = db.Clauses(clause.OnConflict{DoNothing: true}).Create(&gTag{Name: "math"})
	must("OnConflict DoNothing", res.Error)
	tr.add("OnConflict rows", res.RowsAffected)
	var foc gTag
	res = db.Where(gTag{Name: "logic"}).FirstOrCreate(&foc)
	must("FirstOrCreate", res.Error)
	tr.add("FirstOrCreate", fmt.Sprint(foc, res.RowsAffected))
	// TranslateError: GORM finds the driver's error (*pgconn.PgError, *mysql.MySQLError) in the chain.
	err = db.Create(&gAuthor{Name: "Ada"}).Error
	tr.add("unique violation", fmt.Sprintf("%v %T", errors.Is(err, gorm.ErrDuplicatedKey), err))
	err = db.Create(&gBook{AuthorID: 424242, Title: "Orphan"}).Error
	tr.add("foreign-key violation", fmt.Sprintf("%v %T", errors.Is(err, gorm.ErrForeignKeyViolated), err))

	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	return tr, &s.log.tr
}

func sortSteps(tr *transcript) *transcript {
	c := &transcript{steps: append([]step(nil), tr.steps...)}
	sort.SliceStable(c.steps, func(i, j int) bool {
		if c.steps[i].Label != c.steps[j].Label {
			return c.steps[i].Label < c.steps[j].Label
		}
		return fmt.Sprint(c.steps[i].Value) < fmt.Sprint(c.steps[j].Value)
	})
	return c
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}
